"""The stereoctl command tree."""

import typer

app = typer.Typer(help="Submit, follow and fetch stereo-conversion VideoJobs.")
