"""Privacy mechanisms (pure math, no model code)."""
from silobridge.privacy.prototypes import (
    MECHANISM,
    Prototypes,
    class_term_counts,
    classic_gaussian_sigma,
    dp_class_prototypes,
    gaussian_delta,
    gaussian_sigma,
    public_vocabulary,
    rank_terms,
    terms_of,
)

__all__ = ["MECHANISM", "Prototypes", "class_term_counts", "classic_gaussian_sigma", "dp_class_prototypes",
           "gaussian_delta", "gaussian_sigma", "public_vocabulary", "rank_terms", "terms_of"]
