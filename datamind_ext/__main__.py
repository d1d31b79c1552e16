import sys

from datamind_ext.cli.main import main

sys.exit(main())
