"""python -m stereo_operator.watcher"""

import sys

from stereo_operator.watcher.app import main

sys.exit(main())
