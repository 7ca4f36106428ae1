"""``make deploy`` / ``make destroy`` / ``make bootstrap`` / ``make admin``: one command each.

``python -m infra.deploy <command> --env <dev|staging|prod>`` (docs/infrastructure.md "Deploy and
destroy"). The CDK CLI does the deploying; this package does what it leaves to the operator:

- :mod:`infra.deploy.checks` -- prerequisites with a clear message and fix each: Node.js, the CDK
  CLI pinned in package.json, AWS credentials for the right account, a region, the CDK bootstrap
  stack and its version;
- :mod:`infra.deploy.assembly` -- the synthesized cloud assembly (``npx cdk synth``): stacks,
  their environment and dependencies, the bootstrap version they require;
- :mod:`infra.deploy.plan` -- what ``destroy`` removes and what stays, and why, derived from the
  synthesized templates (deletion policies, deletion protection, resources services create
  outside CloudFormation);
- :mod:`infra.deploy.stage` -- a deployed stage: its outputs, the operator commands (the migrate
  function invoked directly), the URLs and first-administrator instructions ``deploy`` prints.

Nothing here imports aws_cdk: the CLI runs the CDK app in its own process.
"""
