# tests/unit/store.mk: unit tests of the store
