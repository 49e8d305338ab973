"""The pure domain: ids, errors, scheduled recaps and their schedule math, recaps, jobs. No I/O."""
