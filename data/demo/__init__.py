"""Generated demo datasets: drawn vehicles in the real folder layouts.

None of the real datasets can be downloaded on the build machines, so the
demo, the tests and the benchmarks use trees of generated JPEGs that are laid
out and named exactly like VeRi-776, VehicleX and Opri (their entries of the
dataset table give the folders):

- vehicles.py (built from parts.py): identity lives in the vehicle: body
  shape, colours and markings;
- cameras.py: each camera's viewpoint, framing, lighting and background;
- render.py: one image of an identity through a camera;
- styles.py: each dataset's look, the domain gap;
- plan.py: which identity, camera and split each file is, and its name;
- tree.py: writing the trees (generate_demo_data), or only what is missing
  (ensure_demo_data, which the demo configs call).

Every image draws its randomness from its own generator seeded with (seed,
dataset, identity, camera, index): the files do not depend on the order or
the number of processes that render them.
"""
from .plan import DEFAULT_COUNTS, PRESETS, plan_shots, resolve_counts
from .render import render_image
from .tree import MARKER_NAME, describe_summary, ensure_demo_data, generate_demo_data, read_marker

__all__ = ["DEFAULT_COUNTS", "MARKER_NAME", "PRESETS", "describe_summary", "ensure_demo_data",
           "generate_demo_data", "plan_shots", "read_marker", "render_image", "resolve_counts"]
