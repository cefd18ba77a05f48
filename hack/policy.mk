# Gateway policies (gatewayruntime/policy). Their tests need redis-server
# (hack/apt-packages.txt) and nothing built first.
.PHONY: bench-policies
bench-policies: ## gateway with JWT + rate limit + validation vs plain; Redis limit check p99
	bash bench/policies/run.sh
