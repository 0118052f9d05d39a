// Package e2e holds trail's end-to-end tests: real trail processes over a
// real MongoDB wire server (FerretDB), behind a real NGINX, killed and
// restarted while producers write. It has no code of its own; the tests
// are in package e2e_test.
//
// The tests read these variables, which scripts/test.sh sets:
//
//	TRAIL_TEST_MONGODB_URI   a MongoDB server; each test uses fresh databases
//	TRAIL_TEST_FERRETDB_BIN  the FerretDB wrapper (tools/ferretdb), for tests
//	                         that stop and restart a server of their own
//	TRAIL_TEST_NGINX         the nginx binary
//
// A test whose server or tool is missing skips, unless CI=true, where it
// fails.
package e2e
