"""Wire models, storage layout and CRD generation for the stereo.dev API."""
