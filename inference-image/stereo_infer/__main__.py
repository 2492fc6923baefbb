import sys

from stereo_infer.cli import main

sys.exit(main())
