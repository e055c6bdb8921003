"""The face front end (optional extra ``smilejax[video]``): from a raw video to per-frame landmarks and blendshapes
(:mod:`smilejax.face.frontend`), the MediaPipe model file it needs (:mod:`smilejax.face.model`), and the AU and
smile-intensity proxies built on them (:mod:`smilejax.face.aus`).

Nothing is imported here, so ``python -m smilejax.face.model`` and the readers work without MediaPipe installed.
"""
