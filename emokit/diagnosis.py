"""Is emotion confounded with speaker in a corpus? Said before anything runs.

In acted corpora (EmoDB, EMOVO) every speaker speaks every emotion. In a
corpus gathered otherwise, a speaker may speak one emotion only; then

- speaker normalisation (``normalization="speaker"``) subtracts each
  speaker's mean, which for such a speaker *is* the emotion's mean: the
  label goes with the speaker;
- validation on other utterances of the training speakers
  (``val_speakers=0``) rewards recognising who speaks.

:func:`speaker_confound` measures it: how many speakers (and what share of
the utterances) hold a single emotion, and the share of the label's entropy
that the speaker explains (Theil's uncertainty coefficient ``U = I(speaker;
label) / H(label)``; 0: the speaker says nothing of the emotion, 1: it says
everything). EmoDB has U = 0.02, EMOVO 0.00. Above :data:`CONFOUND_THRESHOLD`
the kit warns and names the settings to use instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# 0.2: ten times EmoDB's 0.02. A corpus in which a fifth of the utterances
# come from single-emotion speakers (the rest balanced) has U of about 0.2:
# speaker normalisation would erase the emotion of a fifth of the data.
CONFOUND_THRESHOLD = 0.2
SAFE_SETTINGS = "normalization: train and val_speakers >= 1 (emokit run --normalization train --val-speakers 1)"


@dataclass(frozen=True)
class SpeakerConfound:
    """How much a corpus's speakers say about its labels (see the module docstring)."""

    speakers: int
    single_emotion_speakers: int
    single_emotion_share: float  # of the utterances
    speaker_information: float  # U = I(speaker; label) / H(label), 0..1

    @property
    def confounded(self) -> bool:
        return self.speaker_information >= CONFOUND_THRESHOLD

    def describe(self, corpus: str = "the corpus") -> str:
        """One line of the figures, and the warning and its remedy when :attr:`confounded`."""
        line = (f"{corpus}: {self.single_emotion_speakers} of {self.speakers} speakers "
                f"({100 * self.single_emotion_share:.0f} % of the utterances) speak a single emotion; "
                f"the speaker explains {100 * self.speaker_information:.0f} % of the label's entropy")
        if not self.confounded:
            return line + " (no confound)."
        return (line + f" (>= {100 * CONFOUND_THRESHOLD:.0f} %: emotion and speaker are confounded). Speaker "
                "normalisation removes each speaker's mean, and with it the emotion of these speakers; validation "
                "on other utterances of the training speakers measures who is speaking. Use " + SAFE_SETTINGS + ".")


def speaker_confound(manifest: pd.DataFrame) -> SpeakerConfound:
    """:class:`SpeakerConfound` of a manifest with ``speaker`` and ``label`` columns."""
    from emokit.splits import speaker_keys

    counts = pd.crosstab(speaker_keys(manifest), manifest["label"]).to_numpy(dtype=np.float64)
    if counts.size == 0:
        return SpeakerConfound(0, 0, 0.0, 0.0)
    single = (counts > 0).sum(axis=1) == 1
    joint = counts / counts.sum()
    p_label, p_speaker = joint.sum(axis=0), joint.sum(axis=1)
    h_label = -float(np.sum(p_label[p_label > 0] * np.log(p_label[p_label > 0])))
    nonzero = joint > 0
    mutual = float(np.sum(joint[nonzero] * np.log(joint[nonzero] / np.outer(p_speaker, p_label)[nonzero])))
    information = min(1.0, max(0.0, mutual / h_label)) if h_label > 0 else 0.0
    return SpeakerConfound(len(counts), int(single.sum()), float(counts[single].sum() / counts.sum()), information)


def risky_settings(normalization: str, val_speakers: int) -> list[str]:
    """The settings that a confounded corpus turns against the user."""
    risky = []
    if normalization == "speaker":
        risky.append("normalization 'speaker'")
    if not val_speakers:
        risky.append("val_speakers 0")
    return risky
