import os

# The reference codes use OpenMP; one thread keeps tests reproducible and the machine usable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
