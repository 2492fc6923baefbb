"""python -m stereo_operator"""

import sys

from stereo_operator.main import main

sys.exit(main())
