"""The end-to-end suite: the Helm-installed operator and watcher converting the examples."""
