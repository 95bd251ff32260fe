"""What tests/test_hf.py trains: a tiny randomly initialised BERT (no download), data with unevenly padded
tokens, and a Trainer whose gradients before the first optimizer step are kept. Also run as a script, one
process per gloo rank, by the DDP test: ``python tests/hf_trainer.py OUT.pt`` with RANK / WORLD_SIZE set."""

from __future__ import annotations

import os
import sys
import warnings

import torch

LENGTH, VOCAB, TAGS = 12, 100, 5


def config(num_labels: int, **kw):
    from transformers import BertConfig

    return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      vocab_size=VOCAB, max_position_embeddings=32, num_labels=num_labels,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **kw)


def model(kind: str, num_labels: int, **kw):
    from transformers import BertForSequenceClassification, BertForTokenClassification

    torch.manual_seed(0)
    cls = BertForTokenClassification if kind == "tokens" else BertForSequenceClassification
    return cls(config(num_labels, **kw))


def token_data(n: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Sentences of 2 to 12 tokens padded to 12, labels -100 on padding: the valid counts differ a lot between
    examples, so a mean per micro-batch is not the mean of the batch."""
    g = torch.Generator().manual_seed(seed)
    lengths = [2, 12, 3, 11, 12, 2, 7, 4, 9, 5, 12, 6, 3, 10, 8, 2][:n]
    rows = []
    for length in lengths:
        ids = torch.zeros(LENGTH, dtype=torch.long)
        ids[:length] = torch.randint(1, VOCAB, (length,), generator=g)
        tags = torch.where(torch.rand(length, generator=g) < 0.3, torch.randint(1, TAGS, (length,), generator=g), 0)
        labels = torch.full((LENGTH,), -100, dtype=torch.long)
        labels[:length] = tags
        rows.append({"input_ids": ids, "attention_mask": (ids > 0).long(), "labels": labels})
    return rows


def sequence_data(n: int = 8, num_labels: int = 3, multi_label: bool = False, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = 3 + i % 9
        ids = torch.zeros(LENGTH, dtype=torch.long)
        ids[:length] = torch.randint(1, VOCAB, (length,), generator=g)
        if multi_label:
            label = (torch.rand(num_labels, generator=g) < 0.3).float()
        else:
            label = torch.randint(0, num_labels, (), generator=g)
        rows.append({"input_ids": ids, "attention_mask": (ids > 0).long(), "labels": label})
    return rows


def trainer(net, data, out_dir, *, batch: int, accumulate: int = 1, steps: int = 1, loss=None, lr: float = 1e-3,
            callbacks=(), **args):
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class KeepGradients(TrainerCallback):
        def __init__(self) -> None:
            self.grads: list[dict[str, torch.Tensor]] = []

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            self.grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()
                               if p.grad is not None})

    keep = KeepGradients()
    training = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=batch,
                                 gradient_accumulation_steps=accumulate, max_steps=steps, learning_rate=lr,
                                 logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                                 disable_tqdm=True, seed=0, max_grad_norm=0.0, dataloader_num_workers=0, **args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' own notices at construction
        t = Trainer(model=net, args=training, train_dataset=data, compute_loss_func=loss,
                    callbacks=[keep, *callbacks])
    t.keep = keep
    return t


def _ddp_main(out: str) -> None:
    import focalkit.hf as hf

    torch.set_num_threads(1)
    t = trainer(model("tokens", TAGS), token_data(8), os.path.dirname(out) or ".", batch=4,
                loss=hf.loss_func("focal:gamma=2"), ddp_backend="gloo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.train()
    if int(os.environ["RANK"]) == 0:
        torch.save({"grads": t.keep.grads[0], "log": t.state.log_history[0]["loss"],
                    "world": t.args.world_size}, out)


if __name__ == "__main__":
    _ddp_main(sys.argv[1])
