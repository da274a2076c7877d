import sys

from ocrfleet.cli import main

sys.exit(main())
