"""The silo boundary: carriers, gates, ledger, policy. Knows nothing of models, strategies or networks."""
from silobridge.boundary.carriers import (Activations, Carrier, Config, ContextQuery, HardLabels, LogitShift, Metrics,
                                          PrivacySpend, SoftLabels, TextBatch, Weights, decode, expect)
from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.boundary.gate import Gate
from silobridge.boundary.inspect import strings
from silobridge.boundary.ledger import Entry, Ledger
from silobridge.boundary.policy import (DP_OUTPUTS, MaxBytes, NoCanary, NoModelWeights, NoPrivateModel,
                                        NoPrivateRecords, Outgoing, Policy, Rule)

__all__ = ["Activations", "Carrier", "Config", "ContextQuery", "HardLabels", "LogitShift", "Metrics", "PrivacySpend",
           "SoftLabels", "TextBatch", "Weights", "decode", "expect", "Gate", "TextFingerprint",
           "DP_OUTPUTS", "Entry", "Ledger", "MaxBytes", "NoCanary", "NoModelWeights", "NoPrivateModel",
           "NoPrivateRecords", "Outgoing", "Policy", "Rule", "strings"]
