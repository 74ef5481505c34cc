"""The built-in data sets (the embedded ``zoo:mnist-5k`` and ``zoo:digits``, the drawn ``zoo:shapes``) and the
feature networks of the embedded ones (their weights in ``weights/``)."""
