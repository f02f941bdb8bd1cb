"""Typing shorthands for the CLI modules."""

import argparse

SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
