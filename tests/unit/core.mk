# tests/unit/core.mk: unit tests of log, otp, passcode, config, auth
