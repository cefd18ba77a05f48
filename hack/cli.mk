# hack/cli.mk — release archives of the kubectl plugin and its krew manifest.
#
#   make dist-kubectl-add   dist/kubectl-add_<os>_<arch>.tar.gz (reproducible:
#                           static, -trimpath, fixed tar metadata, gzip -n) and
#                           dist/krew/add.yaml with each archive's sha256

KUBECTL_ADD_PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64

.PHONY: dist-kubectl-add
dist-kubectl-add: ## kubectl-add release archives and their krew manifest in dist/
	@mkdir -p dist/krew
	@cp kubectl-plugin/krew/add.yaml dist/krew/add.yaml
	@for p in $(KUBECTL_ADD_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; name=kubectl-add_$${os}_$${arch}.tar.gz; work=$$(mktemp -d); \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w" -o $$work/kubectl-add ./cmd/kubectl-add; \
	  tar -C $$work --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - kubectl-add | gzip -n -9 >dist/$$name; \
	  rm -rf $$work; \
	  sum=$$(sha256sum dist/$$name | cut -d' ' -f1); \
	  awk -v u="/$$name" -v s="$$sum" 'index($$0, u) { hit = 1 } hit && /sha256:/ { sub(/"[0-9a-f]+"/, "\"" s "\""); hit = 0 } { print }' \
	    dist/krew/add.yaml >dist/krew/add.yaml.tmp && mv dist/krew/add.yaml.tmp dist/krew/add.yaml; \
	  echo "dist/$$name $$sum"; \
	done
