"""The silo boundary: carriers, channel, ledger, policy. Knows nothing of models or strategies."""
from silobridge.boundary.carriers import (Activations, Carrier, Config, HardLabels, Metrics,
                                          PrivacySpend, SoftLabels, TextBatch, Weights, decode, expect)
from silobridge.boundary.channel import Channel, InProcessChannel, Remote
from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.boundary.inspect import strings
from silobridge.boundary.ledger import Entry, Ledger
from silobridge.boundary.policy import (MaxBytes, NoCanary, NoModelWeights, NoPrivateModel, NoPrivateRecords,
                                        Outgoing, Policy, Rule)

__all__ = ["Activations", "Carrier", "Config", "HardLabels", "Metrics", "PrivacySpend", "SoftLabels",
           "TextBatch", "Weights", "decode", "expect", "Channel", "InProcessChannel", "Remote", "TextFingerprint",
           "Entry", "Ledger", "MaxBytes", "NoCanary", "NoModelWeights", "NoPrivateModel", "NoPrivateRecords",
           "Outgoing", "Policy", "Rule", "strings"]
