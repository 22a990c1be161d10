from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.prompting import PromptConfig


@dataclass
class LMZeroShotConfig(PromptConfig):
    """Prompted label scoring; see PromptConfig for the prompt, label words and calibration."""

    choose_prompt: bool = option(False, "choose the prompt on the validation records, never the test ones: the LM "
                                        "scores them (sent under the declared exposure 'validation_records') for "
                                        "every candidate (the template and strategy.templates, times the label "
                                        "words and strategy.label_word_sets, times every assignment of a set's words "
                                        "to the classes, up to 4 classes) and the best validation AUC (two classes; "
                                        "else macro-F1) serves; its labels are the validation split's, counted in "
                                        "objectives.labels. Off by default: it ships the private validation "
                                        "records to the LM (the score counts that as unbounded ε)")
    templates: tuple[str, ...] = option((), "with choose_prompt: other user messages to try, each with {text} "
                                            "(and {labels}, {description}); list them in a config file, as --set "
                                            "splits on commas")
    label_word_sets: tuple[str, ...] = option((), "with choose_prompt: other answer words to try, each set's words "
                                                  "joined by '/' in label order, e.g. 'low/high'")

    def __post_init__(self) -> None:
        super().__post_init__()
        for t in self.templates:
            check("{text}" in t, "strategy.templates", t, "a string containing {text}")
        for s in self.label_word_sets:
            check(all(w.strip() for w in s.split("/")) and "/" in s, "strategy.label_word_sets", s,
                  "answer words joined by '/', one per class, e.g. 'low/high'")
        check(not (self.choose_prompt and self.n_shots), "strategy.choose_prompt", self.choose_prompt,
              "false with strategy.n_shots > 0 (demonstrations are chosen under one prompt); set n_shots=0")
        check(self.choose_prompt or not (self.templates or self.label_word_sets), "strategy.choose_prompt",
              self.choose_prompt, "true when strategy.templates or strategy.label_word_sets are given (they are "
                                  "candidates for the choice)")
