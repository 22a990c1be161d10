"""Several data parties and one model party on Flower: non-IID partitions, carriers inside Flower records,
fed-distill's algorithm, the Flower apps, and the engines that run them."""

STRATEGIES = ("fed-distill", "fed-offsite", "lm-fusion")  # the federated strategies (their options: federation.config)
