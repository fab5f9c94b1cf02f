import sys

from msa.data.synthetic.layout import main

sys.exit(main())
