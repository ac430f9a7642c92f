import sys

from ptuning_core.cli import main

sys.exit(main())
