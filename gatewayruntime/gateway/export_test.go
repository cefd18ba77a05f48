package gateway

// WaitPostLoad is waitPostLoad, for the tests of package gateway_test.
var WaitPostLoad = waitPostLoad
