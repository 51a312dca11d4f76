// DOM building without HTML strings: every value becomes a text node or an attribute,
// so user-supplied data can never turn into markup (escaping by construction).

const SVG_NS = 'http://www.w3.org/2000/svg';

function applyProps(element, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) {
      element.setAttribute(key, '');
    } else {
      element.setAttribute(key, String(value));
    }
  }
}

function appendChildren(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h('button', {class: 'primary', onclick: save}, 'Save'). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  applyProps(element, props);
  appendChildren(element, children);
  return element;
}

/** An SVG element (createElementNS), same props and children rules as h(). */
export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  applyProps(element, attrs);
  appendChildren(element, children);
  return element;
}

/** Remove every child of node; returns node. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}
