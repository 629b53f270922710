// Entry of the demo page (index.html): registers <chunklm-demo>, which creates its own client.
import './chunklm-demo.ts';
