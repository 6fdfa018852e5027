"""Data sets (tonic DVS128 Gesture, wfdb MIT-BIH, GLUE SST-2, scikit-learn digits), synthetic generators and spike encoders."""
