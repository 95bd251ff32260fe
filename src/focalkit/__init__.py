"""focalkit: classification losses for class imbalance and hard examples, on logits.

Each loss comes as a function (``focalkit.sigmoid_focal_loss``) and an ``nn.Module``
(``focalkit.SigmoidFocalLoss``), in a sigmoid (binary / multi-label) and a softmax (multi-class) form.
"""

from ._inputs import set_value_checks as set_value_checks
from ._inputs import value_checks as value_checks
from ._inputs import value_checks_enabled as value_checks_enabled
from .asymmetric import asymmetric_loss as asymmetric_loss
from .class_balance import balanced_softmax_loss as balanced_softmax_loss
from .class_balance import class_balanced_weights as class_balanced_weights
from .class_balance import ldam_loss as ldam_loss
from .class_balance import ldam_margins as ldam_margins
from .class_balance import logit_adjusted_cross_entropy as logit_adjusted_cross_entropy
from .cross_entropy import binary_cross_entropy as binary_cross_entropy
from .cross_entropy import cross_entropy as cross_entropy
from .dice import dice_focal_loss as dice_focal_loss
from .dice import dice_loss as dice_loss
from .dice import focal_tversky_loss as focal_tversky_loss
from .dice import tversky_loss as tversky_loss
from .focal import sigmoid_focal_loss as sigmoid_focal_loss
from .focal import softmax_focal_loss as softmax_focal_loss
from .ghm import ghmc_loss as ghmc_loss
from .ghm import ghmr_loss as ghmr_loss
from .hard_truncation import sigmoid_hard_truncation_loss as sigmoid_hard_truncation_loss
from .hard_truncation import softmax_hard_truncation_loss as softmax_hard_truncation_loss
from .nn import AsymmetricLoss as AsymmetricLoss
from .nn import BalancedSoftmaxLoss as BalancedSoftmaxLoss
from .nn import BinaryCrossEntropyLoss as BinaryCrossEntropyLoss
from .nn import CrossEntropyLoss as CrossEntropyLoss
from .nn import DiceFocalLoss as DiceFocalLoss
from .nn import DiceLoss as DiceLoss
from .nn import FocalTverskyLoss as FocalTverskyLoss
from .nn import GHMCLoss as GHMCLoss
from .nn import GHMRLoss as GHMRLoss
from .nn import LDAMLoss as LDAMLoss
from .nn import LogitAdjustedCrossEntropyLoss as LogitAdjustedCrossEntropyLoss
from .nn import Poly1CrossEntropyLoss as Poly1CrossEntropyLoss
from .nn import Poly1FocalLoss as Poly1FocalLoss
from .nn import QualityFocalLoss as QualityFocalLoss
from .nn import SigmoidFocalLoss as SigmoidFocalLoss
from .nn import SigmoidHardTruncationLoss as SigmoidHardTruncationLoss
from .nn import SigmoidSoftTruncationLoss as SigmoidSoftTruncationLoss
from .nn import SoftmaxFocalLoss as SoftmaxFocalLoss
from .nn import SoftmaxHardTruncationLoss as SoftmaxHardTruncationLoss
from .nn import SoftmaxSoftTruncationLoss as SoftmaxSoftTruncationLoss
from .nn import TverskyLoss as TverskyLoss
from .nn import VarifocalLoss as VarifocalLoss
from .poly import poly1_cross_entropy as poly1_cross_entropy
from .poly import poly1_focal_loss as poly1_focal_loss
from .quality import quality_focal_loss as quality_focal_loss
from .quality import varifocal_loss as varifocal_loss
from .running import RunningPositives as RunningPositives
from .soft_truncation import sigmoid_soft_truncation_loss as sigmoid_soft_truncation_loss
from .soft_truncation import softmax_soft_truncation_loss as softmax_soft_truncation_loss

__version__ = "0.1.0"

__all__ = [
    "AsymmetricLoss",
    "BalancedSoftmaxLoss",
    "BinaryCrossEntropyLoss",
    "CrossEntropyLoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalTverskyLoss",
    "GHMCLoss",
    "GHMRLoss",
    "LDAMLoss",
    "LogitAdjustedCrossEntropyLoss",
    "Poly1CrossEntropyLoss",
    "Poly1FocalLoss",
    "QualityFocalLoss",
    "RunningPositives",
    "SigmoidFocalLoss",
    "SigmoidHardTruncationLoss",
    "SigmoidSoftTruncationLoss",
    "SoftmaxFocalLoss",
    "SoftmaxHardTruncationLoss",
    "SoftmaxSoftTruncationLoss",
    "TverskyLoss",
    "VarifocalLoss",
    "asymmetric_loss",
    "balanced_softmax_loss",
    "binary_cross_entropy",
    "class_balanced_weights",
    "cross_entropy",
    "dice_focal_loss",
    "dice_loss",
    "focal_tversky_loss",
    "ghmc_loss",
    "ghmr_loss",
    "ldam_loss",
    "ldam_margins",
    "logit_adjusted_cross_entropy",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "quality_focal_loss",
    "set_value_checks",
    "sigmoid_focal_loss",
    "sigmoid_hard_truncation_loss",
    "sigmoid_soft_truncation_loss",
    "softmax_focal_loss",
    "softmax_hard_truncation_loss",
    "softmax_soft_truncation_loss",
    "tversky_loss",
    "value_checks",
    "value_checks_enabled",
    "varifocal_loss",
]
