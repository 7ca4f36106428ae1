#!/usr/bin/env python3
"""Chatflow's CDK app: ``npx cdk synth`` / ``cdk deploy -c env=prod`` (docs/infrastructure.md)."""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

import infra

app = cdk.App()
infra.build(app)
if str(app.node.try_get_context("nag")).lower() != "false":
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
