"""SynthFACS: procedurally rendered faces with known AUs and emotions.

Faces are a 3-D mesh (the MediaPipe canonical face mesh, 468 vertices) deformed by an identity and
by FACS-style displacement fields, one per Action Unit, then flat-shaded and rasterised with PIL.
See :mod:`.render` for the renderer, :mod:`.actions` for what each AU does to the mesh and
:mod:`.sampling` for AU sets of emotions and AU trajectories of videos.
"""
