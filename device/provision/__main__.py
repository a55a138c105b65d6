"""`python -m device.provision`: what scripts/provision runs."""

import sys

from device.provision.command import main

sys.exit(main())
