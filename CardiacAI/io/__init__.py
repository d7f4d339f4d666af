"""Reading and writing images and label maps (DICOM, NIfTI, NRRD, MHA)."""
