# The compiler (builder/compile): its benchmark against kin-openapi alone.
.PHONY: bench-compile
bench-compile: ## time compiling box/openapi.json against kin-openapi alone; peak RSS
	bench/compile/run.sh
