"""Preference-based reward learning: simulated teachers (B-Pref) and their labels."""

from rewardlearn.preference.teachers import (
    PRESETS,
    PreferenceLabels,
    SyntheticTeacher,
    Teacher,
)

__all__ = ["PRESETS", "PreferenceLabels", "SyntheticTeacher", "Teacher"]
