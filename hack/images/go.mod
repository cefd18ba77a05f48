module github.com/gatekiln/gatekiln/hack/images

go 1.26

require github.com/google/go-containerregistry v0.22.1 // indirect
