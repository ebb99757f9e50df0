"""``python -m gancomp.train --config NAME ...``: the same as ``gancomp train``."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.argv = ["gancomp", "train", *sys.argv[1:]]
    main()
