import sys

from gpu_app.cli import main

sys.exit(main())
