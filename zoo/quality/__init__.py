"""Sample quality offline: FID, KID and precision/recall (torch-fidelity) on Inception or on the small
feature networks shipped for the embedded data sets (``zoo evaluate``)."""
