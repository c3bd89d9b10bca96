"""rewardlearn_envs: MuJoCo tasks of our own (installed from envs/)."""
