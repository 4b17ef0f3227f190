import sys

from incydr_sandbox.cli import main

sys.exit(main())
