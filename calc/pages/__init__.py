"""Page figures: one module per page group, matching ``macros/*_pages.py``.

* :mod:`calc.pages.lora` - How LoRA works, Choosing the rank, Alpha and scaling, Target modules (``macros/lora_pages.py``);
* :mod:`calc.pages.quant` - QLoRA, NF4 (``macros/quant_pages.py``);
* :mod:`calc.pages.memory` - Training memory, Adapter files, Validation (``macros/memory_pages.py``);
* :mod:`calc.pages.site` - Home, Presets, FAQ (``macros/site_pages.py``, ``macros/tables.py``);
* :mod:`calc.pages.calculator` - the Calculator page's entry point, run in the browser (``macros/calculator.py``);
* :mod:`calc.pages.snippets` - the generated ``LoraConfig`` / QLoRA code blocks (``macros/snippets.py``);
* :mod:`calc.pages.common` - what they share: units, preset lookups, the handbook's default conditions.

These modules combine the engine at :mod:`calc`'s top (families, architecture, lora, quant, memory, adapters,
gpus) into the rows, shares and conversions a page shows; they know no site and do no I/O beyond calc's own data
files. Each macro calls one function here, and each function here names the engine function it rests on.
"""
