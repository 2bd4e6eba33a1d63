"""How the optimizer moves the image (``--model.parameterisation``): pixel by pixel (``pixels``), or in
the coordinates of a Laplacian pyramid (``laplacian_pyramid``), whose coarse bands move the large
shapes in few steps (``coordinates``: what the optimizer is given and how its steps reach the image;
``pyramid``: the pyramid's synthesis and its adjoint).

Imports torch only; the model holds one and calls it at its seams (the gradient of a
step is complete; the optimizer has stepped).
"""
