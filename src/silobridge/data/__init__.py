from silobridge.data.loaders import REVIEWS, load_reviews, load_table
from silobridge.data.splits import make_splits, plant_canaries
from silobridge.data.task import LabelledTexts, Splits, TaskSpec

__all__ = ["REVIEWS", "load_reviews", "load_table", "make_splits", "plant_canaries", "LabelledTexts",
           "Splits", "TaskSpec"]
