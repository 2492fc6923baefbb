"""stereoctl: submit, follow and fetch stereo-conversion VideoJobs on any cluster."""
