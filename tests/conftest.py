pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.passwords",
    "tests.fixtures.seaweed",
    "tests.fixtures.rabbitmq",
    "tests.fixtures.registry",
    "tests.fixtures.live_registry",
]
