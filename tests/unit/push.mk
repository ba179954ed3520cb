# tests/unit/push.mk: unit tests of push
