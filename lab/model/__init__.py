"""What a network is: the spec (plain data -> validated layers, shapes, parameters), the layer
registry, the presets and the teaching arithmetic. Imports nothing else of the lab but settings and i18n."""
