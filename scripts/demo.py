#!/usr/bin/env python
"""The demo page: a Gradio app that classifies an uploaded or example image and draws where the latents look
(run with --help for the flags; needs `pip install -e ".[demo]"`).

    python scripts/demo.py --model_dir outputs/cpu-small

Installed from a wheel, `perceiver-study-demo` is the same command.
"""

import sys

from modeling_perceiver_study.demo import demo_main

if __name__ == "__main__":
    sys.exit(demo_main())
