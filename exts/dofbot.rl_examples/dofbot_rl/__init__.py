"""dofbot-rl: train, test and deploy a reinforcement-learning reacher for the Yahboom Dofbot.

The package is shared by the Isaac Sim (Kit) extension ``dofbot.rl_examples`` and the
headless ``dofbot-rl`` command line. Importing it has no side effects and needs only
the standard library (the sim-to-real server imports it on the robot's Jetson).
"""

__version__ = "0.1.0"
