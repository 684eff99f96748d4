"""vislearn: learning visual representations and using them to see and to act.

One package, laid out by family; imports run one way (`common` <- `backbones` <- `pretrain` <- {`video`,
`segment`, `control`}) and families never import each other. `vislearn --help` lists every command."""
