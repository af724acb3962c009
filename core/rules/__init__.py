"""The condition model (conditions, masks) shared by exclusion rules (exclusion, rule_import) and
presets."""
