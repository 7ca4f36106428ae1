#!/usr/bin/env python3
"""Chatflow's CDK app: ``npx cdk synth`` / ``cdk deploy -c env=prod`` (docs/infrastructure.md)."""

import json
import os
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

import infra

# The CLI passes cdk.json's context (feature flags, environments); `python app.py` on its own must
# load it, or it would build a different template.
context = None
if "CDK_OUTDIR" not in os.environ:
    context = json.loads((Path(__file__).parent / "cdk.json").read_text())["context"]
app = cdk.App(context=context)
infra.build(app)
if str(app.node.try_get_context("nag")).lower() != "false":
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
